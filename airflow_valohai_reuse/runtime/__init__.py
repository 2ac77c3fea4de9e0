"""The Valohai runtime contract on the host: the /valohai tree, inputs placed, outputs collected."""
