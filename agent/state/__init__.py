"""The agent's state machine (pure): events in, instructions out; see machine.py."""
