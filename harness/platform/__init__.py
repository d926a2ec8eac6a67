"""Platforms: which accelerator is here (npu, gpu, cpu) and the environment each needs."""
