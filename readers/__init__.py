"""Readers: the StreamingDataset subclass that samples a streamclip dataset by plan."""
