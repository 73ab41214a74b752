"""The keys every run shares, with their defaults (the paper's recipe, METHOD.md).

A method's own keys (``cal_*``, ``cpl_*``, ``simgcd_*``) live beside it in
models/<method>.py and are listed in docs/configuration.md. An experiment file
imports this module and changes only what differs::

    from configs.base import *  # noqa: F401,F403
    protocol = 2

Any key can also be overridden on the command line: ``python train.py
configs/owdfa40_p1.py epochs=5 backbone=resnet18``. A key that is neither here
nor the method's is an error, and so is a value of the wrong type.
"""
import os

# ---------------------------------------------------------------- run
method = "cal"                 # cal (this paper), or a baseline on the same data: cpl, simgcd (docs/baselines.md)
experiment = "base"            # name of the experiment (default: the config file's name); runs go to exp/<experiment>/
run_dir = ""                   # write the run here instead (must be new or empty)
resume = ""                    # run directory to continue from its checkpoints/last.pt
seed = 2025                    # training seed (model init, sampler, augmentation, dropout); paper: 2025-2027
device = "auto"                # auto (cuda if available, else cpu), cpu, cuda or cuda:N
num_workers = 4                # data-loader worker processes per training process
log_every = 20                 # steps between TensorBoard / progress-bar updates
nonfinite_loss = "stop"        # stop: end the run naming the bad term; skip: skip the step and count it

# ---------------------------------------------------------------- data
dataset_root = os.environ.get("DATASET_ROOT", "")  # folder holding <index>_<Type>_<Method>/ class folders
protocol = 1                   # which classes are known: 1 (19 known), 2 (13 known) or 3 (29 known), from the class table
classes_file = ""              # class table CSV (index,code,family,method,known_in,...); empty: OWDFA-40
known_classes = ()             # known class indices, e.g. (0, 1, 3) or known_classes=0,1,3; empty: use `protocol`
split_seed = 2025              # seed of the sampling/split generator, independent of `seed`
split_file = ""                # a run's split.json: train on exactly that split instead of drawing one
real_source_cap = 10000        # images drawn per real source folder before the class budget
budget_real = 20000            # images drawn for the real class (when known)
budget_known = 2000            # images drawn per other known class
budget_novel = 1500            # images drawn per novel class
budget_scale = 1.0             # factor on the class table's per-class counts (known_labelled, ...); budget_* unscaled
train_fraction = 0.8           # share of each class's drawn images used for training (rest: test)
prop_train_labels = 0.75       # share of known-class training images that keep their label
image_size = 256               # side of the square network input
crop_face = True               # crop the face with dlib (cached once per image); false: whole image
face_margin = 1.2              # crop box scale around the detected face (0.1 of the box on each side)
align_face = False             # align with the 68 landmarks into a 320 px face chip before resizing
predictor_path = os.environ.get("PREDICTOR_PATH", "")  # 68-landmark file; empty: the one in face-recognition-models
crop_cache_dir = ""            # face-crop and image-check cache; empty: <dataset_root>/../owdfa_crop_cache

# ---------------------------------------------------------------- model (the parts every method shares)
backbone = "resnet50"          # any timm model name that yields a feature map; a bare name means timm's default
                               # tag (resnet50 -> resnet50.a1_in1k, hub repo timm/resnet50.a1_in1k); name a tag to pin one
pretrained = True              # ImageNet weights from `pretrained_path`, else the HF cache, else a package that
                               # ships them (tf_efficientnet_lite0/1/2), else a download
pretrained_path = ""           # local weight file for the backbone (used when pretrained=true)
# Input normalisation of the [0, 1] image: empty takes the backbone's timm pretrained config (ImageNet's
# for resnet*, 0.5 for tf_efficientnet_lite*); a run records the values it used, and predict.py uses them.
input_mean = ()                # per-channel mean, e.g. 0.5,0.5,0.5; empty: the backbone's
input_std = ()                 # per-channel std; empty: the backbone's
dropout = 0.2                  # dropout on the pooled feature before the prototypes
prototype_init_std = 0.001     # std of the normal init of the prototype matrix
unknown_k = False              # true: the number of novel classes is not given; the method counts them (CAL only)
channels_last = True           # NHWC memory layout (faster convolutions on most CPUs and GPUs)
sync_batchnorm = False         # SyncBatchNorm across processes under torchrun

# ---------------------------------------------------------------- optimisation
# CAL's CCR schedule lambda = (epoch+1)/epochs uses `epochs`, so a shorter run
# changes the loss, not just its length (as in the authors' release).
epochs = 50                    # training epochs
batch_size = 128               # global batch (split evenly over torchrun processes)
test_batch_size = 128          # evaluation batch per process
lr = 2e-4                      # Adam learning rate (not scaled with the number of processes)
weight_decay = 1e-3            # Adam (L2) weight decay
lr_step = 10                   # StepLR: epochs between decays
lr_gamma = 0.05                # StepLR: decay factor
# amp: "bf16" autocast, "fp32", or "auto": bf16 from image_size >= 128 px, where its faster matrix products
# pay for the casts, fp32 below (utils/device.py use_bf16). CUDA only (CPU always runs fp32).
# true/false (older configs) mean bf16/fp32.
amp = "auto"                   # autocast precision: auto, bf16 or fp32 (see above)
# cudnn_benchmark: cuDNN times its convolution algorithms on the first batch of each shape and keeps
# the fastest (CUDA only). Results stay within floating-point noise of the default algorithms, but runs
# on a GPU are not bitwise repeatable either way.
cudnn_benchmark = True         # let cuDNN pick its fastest convolution algorithms (CUDA)
# compile: torch.compile the network on CUDA (ignored on CPU); the first step compiles for about a
# minute, evaluation once more (speed: docs/performance.md).
compile = True                 # torch.compile the network (CUDA); false: eager
# gpu_augment: loader workers ship the face crop resized to image_size*256/224 plus the drawn view
# parameters; the weak/strong views are made batched on the device. Same random choices from the same
# (seed, epoch, position) draw, so exact resume is kept; the pixels differ from the CPU views by resampling.
gpu_augment = False            # make the training views on the device instead of in the loader workers
