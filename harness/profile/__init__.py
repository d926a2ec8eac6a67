"""Profiles on demand: a torch (or torch_npu) profile of the server around one case, and where its time goes."""
