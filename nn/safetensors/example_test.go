package safetensors_test

import (
	"bytes"
	"fmt"

	"github.com/maas-ml/maas/nn/safetensors"
)

func Example() {
	f := &safetensors.File{
		Metadata: map[string]string{"format": "pt"},
		Tensors: map[string]safetensors.Tensor{
			"fc.weight": safetensors.F32([]int{2, 3}, []float32{1, 2, 3, 4, 5, 6}),
			"fc.bias":   safetensors.F32([]int{2}, []float32{0.5, -0.5}),
		},
	}
	var buf bytes.Buffer
	if err := safetensors.Encode(&buf, f); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("encoded bytes:", buf.Len())

	g, err := safetensors.Decode(buf.Bytes())
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("format:", g.Metadata["format"])
	for _, name := range g.Names() {
		t := g.Tensors[name]
		v, _ := t.Float32()
		fmt.Println(name, t.DType, t.Shape, t.NumElements(), v)
	}
	// Output:
	// encoded bytes: 200
	// format: pt
	// fc.bias F32 [2] 2 [0.5 -0.5]
	// fc.weight F32 [2 3] 6 [1 2 3 4 5 6]
}
