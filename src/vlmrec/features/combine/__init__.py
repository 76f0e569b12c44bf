"""Feature sets made from feature sets: fusion of several modalities, and the content controls
(shuffled, random, zero twins) that show whether a model uses the content."""
