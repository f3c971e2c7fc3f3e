"""Where the data comes from: the IDX file format (``idx``) and MNIST's sources (``mnist``)."""
