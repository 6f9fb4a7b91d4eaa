package serve

import (
	"strconv"
	"sync/atomic"
)

// version is one loaded version of a model: its shapes, its batcher (which
// alone owns the nn.Model) and a reference count of the requests using it.
type version struct {
	name    string
	num     int
	label   string // num as a string: metric label and model_version
	inShape []int  // per sample, e.g. (C, H, W)
	classes int
	// sampleSize is the values per sample (C·H·W).
	sampleSize int
	maxBatch   int
	norm       pixelNorm
	text       *textModel // a language model's vocabulary; nil for classifiers
	// batch is the first instance's batcher; instances are all of them,
	// each with its own copy of the model, sharing batch's queue.
	batch     *batcher
	instances []*batcher

	// refs counts the requests holding the version; retiredBit is set when
	// the table no longer lists it. The batcher stops when both hold.
	refs atomic.Int64
	// incoming counts inference requests that resolved to this version and
	// are still reading or checking their body: the batcher waits for them.
	incoming atomic.Int32
}

const retiredBit = 1 << 62

// acquire takes a reference, unless the version is retired.
func (v *version) acquire() bool {
	for {
		r := v.refs.Load()
		if r&retiredBit != 0 {
			return false
		}
		if v.refs.CompareAndSwap(r, r+1) {
			return true
		}
	}
}

// release drops a reference; the last one of a retired version stops it.
func (v *version) release() {
	if v.refs.Add(-1) == retiredBit {
		v.batch.close()
	}
}

// retire marks a version that the table no longer lists; it stops now if
// no request holds it, else when the last one releases it.
func (v *version) retire() {
	if v.refs.Add(retiredBit) == retiredBit {
		v.batch.close()
	}
}

// runInline computes j on an idle instance in the caller's goroutine when
// no request is queued (a queued one would otherwise wait behind it), and
// reports whether it did.
func (v *version) runInline(j *job) bool {
	if len(v.batch.queue) > 0 {
		return false
	}
	for _, b := range v.instances {
		if b.runInline(j) {
			return true
		}
	}
	return false
}

// metadata is the version's OIP V2 model metadata.
func (v *version) metadata(versions []string) ModelMetadata {
	if v.text != nil {
		return ModelMetadata{
			Name: v.name, Versions: versions, Platform: Platform,
			Inputs:  []TensorMetadata{{Name: InputPrompt, Datatype: DatatypeBytes, Shape: []int{-1}}},
			Outputs: []TensorMetadata{{Name: OutputText, Datatype: DatatypeBytes, Shape: []int{-1}}},
		}
	}
	in := append([]int{-1}, v.inShape...)
	return ModelMetadata{
		Name:     v.name,
		Versions: versions,
		Platform: Platform,
		Inputs:   []TensorMetadata{{Name: InputName, Datatype: DatatypeFP32, Shape: in}},
		Outputs: []TensorMetadata{
			{Name: OutputLogits, Datatype: DatatypeFP32, Shape: []int{-1, v.classes}},
			{Name: OutputProbability, Datatype: DatatypeFP32, Shape: []int{-1, v.classes}},
			{Name: OutputClass, Datatype: DatatypeINT64, Shape: []int{-1}},
		},
	}
}

func versionLabel(n int) string { return strconv.Itoa(n) }
