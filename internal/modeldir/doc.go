// Package modeldir is the format of a trained model on disk and in the
// model bucket: a directory of two files, model.safetensors (the weights,
// PyTorch's names and layouts, with metadata) and model.yaml (the job spec,
// which rebuilds the model and its input normalisation). `maas train`, the
// cluster's rank-0 worker, the serving endpoint and the CLI read and write
// it only through this package.
package modeldir
