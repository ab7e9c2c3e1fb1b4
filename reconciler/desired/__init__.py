"""Loading and checking the desired-state file: YAML positions, ${VAR}, shape, rules."""
