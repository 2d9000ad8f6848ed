"""Signal processing on waveforms and spectrograms: no files, no networks."""
