"""What the CLI runs, above the judges: prediction over inputs of any size (`stream`, `ray_engine`)."""
