"""demo: `advlegit demo`, the whole study on the embedded defaults, composed from the three packages'
public commands (generation -> study_app -> analysis), never their internals."""
