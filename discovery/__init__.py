"""The open-world parts: counting novel classes (k_estimation), setting novel prototypes
from clusters (seeding), pruning them (pruning, DPP) and saying "unknown" (abstain)."""
