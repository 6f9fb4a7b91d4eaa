package nn_test

import (
	"fmt"

	"github.com/maas-ml/maas/nn"
	"github.com/maas-ml/maas/tensor"
)

// A model from a spec keeps every parameter in one flat vector; each tensor
// is a named view into it.
func ExampleBuild() {
	spec := nn.ModelSpec{Input: []int{1, 28, 28}, Layers: []nn.LayerSpec{
		{Type: "conv2d", Filters: 8, Kernel: 3, Padding: 1},
		{Type: "relu"},
		{Type: "maxpool2d", Kernel: 2},
		{Type: "flatten"},
		{Type: "dense", Units: 10},
	}}
	m, err := nn.Build(spec, tensor.Reference)
	if err != nil {
		fmt.Println(err)
		return
	}
	m.Init(1)
	for _, v := range m.Views {
		fmt.Println(v.Name, v.Shape, v.Offset)
	}
	fmt.Println("parameters:", len(m.Params), "output:", m.OutShape())
	// Output:
	// conv1.weight [8 1 3 3] 0
	// conv1.bias [8] 72
	// fc1.weight [10 1568] 80
	// fc1.bias [10] 15760
	// parameters: 15770 output: [10]
}

// A spec that does not fit is refused with the field named.
func ExampleModelSpec_Validate() {
	spec := nn.ModelSpec{Input: []int{1, 28, 28}, Layers: []nn.LayerSpec{
		{Type: "conv2d", Filters: 8, Kernel: 3},
		{Type: "dense", Units: 10},
	}}
	fmt.Println(spec.Validate())
	// Output:
	// model.layers[1]: dense needs a flat input, got shape [8 26 26]; add a flatten layer before it
}
