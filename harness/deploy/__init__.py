"""Deployments of more than one server: prefill/decode-disaggregated instances with an HCCL rank table."""
