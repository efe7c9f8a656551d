"""The configurations: what decides a model, a training run, a sample. Each is a frozen
dataclass whose fields are declared once, with their options' help and bounds (fields.py);
they travel inside checkpoints, so `charrnn sample` needs nothing but the checkpoint."""
