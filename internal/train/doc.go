// Package train runs training in one process: the data order, the step
// (next batch → forward → zero grad → backward → clip → update), epochs with
// the learning-rate schedule, evaluation and the model artifact (a
// directory with model.safetensors and model.yaml). The cluster's workers
// reuse the step.
package train
