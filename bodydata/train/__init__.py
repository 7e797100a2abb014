"""Training the body embedding: config, trainer loop, checkpoints, several processes (DDP). ``bodydata train`` is the CLI."""
