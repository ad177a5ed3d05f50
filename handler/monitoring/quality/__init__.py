"""Model quality: ground-truth labels joined to served rows by inference id, the problem type's metrics against
the training baseline, broken down by slice (`python -m handler quality`, and the labels trigger online)."""
