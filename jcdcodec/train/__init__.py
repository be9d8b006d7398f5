"""Training: data, the three-branch losses, the loop (resumable, distributed) and export."""
