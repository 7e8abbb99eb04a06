"""Hard example mining: confidence of the SFT model, similarity retrieval and set selection."""
