"""Every configuration key with its default (the paper's recipe, METHOD.md).

An experiment file imports this module and changes only what differs::

    from configs.base import *  # noqa: F401,F403
    protocol = 2

Any key can also be overridden on the command line: ``python train.py
configs/owdfa40_p1.py epochs=5 backbone=resnet18``. A key that is not defined
here is an error, and so is a value of the wrong type.
"""
import os

# ---------------------------------------------------------------- run
method = "cal"                 # cal (this paper), or a baseline on the same data: cpl, simgcd (docs/baselines.md)
experiment = "base"            # name of the experiment; runs go to exp/<experiment>/<timestamp>/
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

# ---------------------------------------------------------------- model
backbone = "resnet50"          # any timm model name that yields a feature map; a bare name means timm's default
                               # tag (resnet50 -> resnet50.a1_in1k, hub repo timm/resnet50.a1_in1k); name a tag to pin one
pretrained = True              # ImageNet weights from `pretrained_path`, else the HF cache, else a package that
                               # ships them (tf_efficientnet_lite0/1/2), else a download
pretrained_path = ""           # local weight file for the backbone (used when pretrained=true)
# Input normalisation of the [0, 1] image: empty takes the backbone's timm pretrained config (ImageNet's
# for resnet*, 0.5 for tf_efficientnet_lite*); a run records the values it used, and predict.py uses them.
input_mean = ()                # per-channel mean, e.g. 0.5,0.5,0.5; empty: the backbone's
input_std = ()                 # per-channel std; empty: the backbone's
frequency_attention = True     # DCT frequency attention on the feature map (the authors' FFE)
# fused_gate: the attention's gate (two 3x3 convolutions at full resolution) as one Triton kernel on CUDA
# (models/gate_kernel.py; ignored on CPU). Same parameters, TF32 instead of bf16 products. Off until
# timed on a GPU: checked against the convolutions in Triton's interpreter and compiled for sm_80/sm_90.
fused_gate = False             # one fused Triton kernel for the attention gate (CUDA)
dropout = 0.2                  # dropout on the pooled feature before the prototypes
prototype_init_std = 0.001     # std of the normal init of the prototype matrix
unknown_k = False              # true: 10 prototypes per known class + Dynamic Prototype Pruning
prototypes_per_known = 10      # prototypes per known class when unknown_k=true
prune_coverage = 0.9544        # DPP: cumulative usage the kept novel prototypes must cover
# novel_k_source: how an unknown-K run counts the novel classes. "posthoc" (default): at the end of epoch
# posthoc_epoch the post-hoc estimator (estimate_k.py) clusters the training features and its count and
# centres become the novel prototypes; no DPP. "dpp": the paper's Dynamic Prototype Pruning every epoch
# from prune_start (its Table 2); it collapses to 2-3 novel classes on weak and on pretrained features
# (docs/choosing_k.md), so an unknown-K run with DPP also logs the post-hoc count at its end.
novel_k_source = "posthoc"     # unknown K: "posthoc" or "dpp" (the paper's rule)
posthoc_epoch = 4              # posthoc: the epoch (0-based) at whose end the estimate sets the novel prototypes
prune_start = 0                # DPP: first epoch (0-based) at whose end it may prune; paper 0 (from the start)
prune_max_drop = 1.0           # DPP: largest share of the novel prototypes one epoch may remove; paper 1.0 (no bound)
prune_anchor_norm = "unit"     # DPP: joined anchors get norm 1 (paper) or "members": their members' mean norm
prune_optimizer_state = "keep" # DPP: Adam moments stay at their row index (the release), or "move" with the rows
channels_last = True           # NHWC layout: ResNet-50@256 trains +49% faster (bf16, H200), +26% on CPU
sync_batchnorm = False         # SyncBatchNorm across processes under torchrun

# ---------------------------------------------------------------- losses
tau_student = 1.0              # student temperature (supervised, regulariser, CCR targets' student side, ACR)
tau_teacher = 0.1              # teacher temperature of the CCR soft targets
reg_weight = 1.0               # weight of the prior (uniform-usage) regulariser
tau_prior = 1.0                # temperature of the softmax the prior regulariser averages (paper: tau_student, 1.0)
ccr_weight = 0.2               # weight of CCR; 0 disables it
acr = True                     # asymmetric confidence reinforcement (pseudo-labels on unlabelled rows)
acr_weight = 1.0               # weight of the ACR term
pseudo_start = 5               # first epoch (0-based) with ACR pseudo-labels
gamma = 0.9                    # confidence threshold for known-class pseudo-labels
acr_asymmetric = True          # false: novel pseudo-labels use gamma too (the paper's single-threshold ablation)

# ---------------------------------------------------------------- optimisation
# The CCR schedule lambda = (epoch+1)/epochs uses `epochs`, so a shorter run
# changes the loss, not just its length (as in the authors' release).
epochs = 50                    # training epochs
batch_size = 128               # global batch (split evenly over torchrun processes)
test_batch_size = 128          # evaluation batch per process
lr = 2e-4                      # Adam learning rate (not scaled with the number of processes)
weight_decay = 1e-3            # Adam (L2) weight decay
lr_step = 10                   # StepLR: epochs between decays
lr_gamma = 0.05                # StepLR: decay factor
# amp: "bf16" autocast, "fp32", or "auto": bf16 from image_size >= 128 px, fp32 below (on an H100
# bf16 trains ResNet-50 @ 256 41 % faster, ResNet-18 @ 64 29 % slower; trainer/device.py use_bf16).
# CUDA only (CPU always runs fp32). true/false (older configs) mean bf16/fp32.
amp = "auto"                   # autocast precision: auto, bf16 or fp32 (see above)
# cudnn_benchmark: cuDNN times its convolution algorithms on the first batch of each shape and keeps
# the fastest (CUDA only). Results stay within floating-point noise of the default algorithms, but runs
# on a GPU are not bitwise repeatable either way.
cudnn_benchmark = True         # let cuDNN pick its fastest convolution algorithms (CUDA)
# compile: torch.compile the network on CUDA (ignored on CPU). ResNet-50 @ 256 bf16 on an H100: 2,514 ->
# 3,294 img/s (+31 %); the first step compiles for about a minute, evaluation once more. Checked on an
# H100: a whole run with DPP (the prototype count changed twice), a mid-epoch stop and resume.
compile = True                 # torch.compile the network (CUDA); false: eager
# gpu_augment: loader workers ship the face crop resized to image_size*256/224 plus the drawn view
# parameters; the weak/strong views are made batched on the device. Same random choices from the same
# (seed, epoch, position) draw, so exact resume is kept; the pixels differ from the CPU views by resampling.
gpu_augment = False            # make the training views on the device instead of in the loader workers

# ---------------------------------------------------------------- baselines (docs/baselines.md)
# CPL (method=cpl): its recipe (Adam 2e-4, weight decay 1e-5, StepLR(10, 0.2)) is in configs/cpl_*.py.
cpl_parts = 3                  # part grid side: parts x parts part features, each with its own BNNeck
cpl_margin = 0.2               # raise of the target logit in the labelled cross-entropy (the release's -m)
cpl_glv_weight = 0.5           # weight of the global-local voting pairwise BCE (eta1)
cpl_csp_weight = 0.5           # weight of the confidence-based soft pseudo-label loss (eta2)
cpl_entropy_weight = 1.0       # weight of the mean entropy, subtracted from the loss (eta3)
# SimGCD (method=simgcd), on the CAL backbone and BNNeck with its own cosine classifier and projector.
simgcd_sup_weight = 0.35       # lambda: weight of the supervised terms, 1 - lambda for the unsupervised ones
simgcd_memax_weight = 2.0      # weight of the mean-entropy regulariser
simgcd_student_temperature = 0.1        # student temperature of both classification terms
simgcd_teacher_temperature = 0.04       # teacher temperature after the warm-up
simgcd_warmup_teacher_temperature = 0.07  # teacher temperature at epoch 0, linear to the one above
simgcd_warmup_teacher_epochs = 30       # epochs of the teacher temperature warm-up
simgcd_unsup_temperature = 1.0          # temperature of the unsupervised contrastive loss (the release's call)
simgcd_supcon_temperature = 0.07        # temperature of the supervised contrastive loss
simgcd_projection_dim = 256             # projector output width
simgcd_hidden_dim = 2048                # projector hidden width
simgcd_mlp_layers = 3                   # projector linear layers
