"""What every part of klon shares: the error type, the processor contract and its knobs, audio
files, atomic writes, data paths, figures and the error-to-signal ratio."""
