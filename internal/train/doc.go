// Package train runs training in one process: the data order, the step
// (next batch → forward → loss → zero grad → backward → clip → update),
// epochs with the learning-rate schedule, and evaluation. Trained models
// are written as model directories by package modeldir.
package train
