"""A trained run -> answers and artefacts: loading a checkpoint or an export
for inference, naming prototypes, the attributor and its prediction CSV,
test.py's report files, the export folder and the Hugging Face hub."""
