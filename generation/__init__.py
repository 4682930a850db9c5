"""generation: train defended classifiers, attack them, write verifiable stimulus sets (torch only here)."""
