"""The real model zoo: model families, offline datasets, training, profiling, shipped profiles."""
