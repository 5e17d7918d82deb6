"""Tests of training and fine-tuning (loss, batches, checkpoints and resume, replay, model files).
"""
