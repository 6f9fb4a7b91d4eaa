package wire

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

func TestFloatsRoundTrip(t *testing.T) {
	src := []float32{0, 1, -2.5, float32(math.Inf(1)), math.SmallestNonzeroFloat32, 3.4e38}
	b := AppendFloats(nil, src)
	if len(b) != 4*len(src) {
		t.Fatalf("%d bytes for %d floats", len(b), len(src))
	}
	// Little-endian: 1.0 is 00 00 80 3f.
	if b[4] != 0 || b[5] != 0 || b[6] != 0x80 || b[7] != 0x3f {
		t.Fatalf("1.0 encoded as % x", b[4:8])
	}
	got := make([]float32, len(src))
	if err := Floats(got, b); err != nil {
		t.Fatal(err)
	}
	for i := range src {
		if got[i] != src[i] {
			t.Fatalf("[%d] = %g, want %g", i, got[i], src[i])
		}
	}
	if err := Floats(got, b[:5]); !errors.Is(err, ErrFloats) {
		t.Fatalf("5 bytes: %v", err)
	}
	if err := Floats(got[:2], b); !errors.Is(err, ErrFloats) {
		t.Fatalf("length mismatch: %v", err)
	}
}

func TestMessagesRoundTripAndVersion(t *testing.T) {
	in := &GradChunk{V: Version, Job: "j1", Epoch: 2, Step: 7, Rank: 1, N: 21, Chunk: 3, Data: AppendFloats(nil, []float32{1, 2})}
	b, err := Encode(in)
	if err != nil {
		t.Fatal(err)
	}
	var out GradChunk
	if err := Decode(b, &out); err != nil {
		t.Fatal(err)
	}
	if out.Job != "j1" || out.Step != 7 || out.Rank != 1 || out.N != 21 || out.Chunk != 3 || len(out.Data) != 8 {
		t.Fatalf("round trip: %+v", out)
	}
	in.V = Version + 1
	b, _ = Encode(in)
	if err := Decode(b, &out); !errors.Is(err, ErrVersion) {
		t.Fatalf("a future version: %v", err)
	}
	if err := Decode([]byte{0xc1, 0x00}, &out); !errors.Is(err, ErrDecode) {
		t.Fatalf("garbage: %v", err)
	}
}

// TestRegisterDevice: a registration carries the member's device, and one
// from a member that predates the field decodes with no device.
func TestRegisterDevice(t *testing.T) {
	b, err := Encode(&Register{V: Version, ID: "w-1", Kind: KindWorker, Host: "h", Threads: 2, Device: "NVIDIA H200 (cuda:0)"})
	if err != nil {
		t.Fatal(err)
	}
	var r Register
	if err := Decode(b, &r); err != nil || r.Device != "NVIDIA H200 (cuda:0)" || r.Threads != 2 {
		t.Fatalf("round trip: %+v, %v", r, err)
	}
	// The message as members sent it before: the same fields, no device.
	type oldRegister struct {
		V       int    `msgpack:"v"`
		ID      string `msgpack:"id"`
		Kind    string `msgpack:"kind"`
		Host    string `msgpack:"host"`
		Threads int    `msgpack:"threads"`
	}
	old, err := msgpack.Marshal(&oldRegister{V: Version, ID: "w-2", Kind: KindWorker, Host: "h", Threads: 4})
	if err != nil {
		t.Fatal(err)
	}
	r = Register{}
	if err := Decode(old, &r); err != nil || r.ID != "w-2" || r.Threads != 4 || r.Device != "" {
		t.Fatalf("an older registration: %+v, %v", r, err)
	}
}

func TestSplitAndChunks(t *testing.T) {
	for _, c := range []struct{ n, parts int }{{10, 3}, {241546, 2}, {5, 5}, {3, 1}} {
		rs := Split(c.n, c.parts)
		next := 0
		for _, r := range rs {
			if r.Lo != next || r.Len() < c.n/c.parts || r.Len() > c.n/c.parts+1 {
				t.Fatalf("Split(%d, %d) = %v", c.n, c.parts, rs)
			}
			next = r.Hi
		}
		if next != c.n {
			t.Fatalf("Split(%d, %d) ends at %d", c.n, c.parts, next)
		}
	}
	cs := Chunks(Range{Lo: 5, Hi: 25}, 8)
	if len(cs) != 3 || cs[0] != (Range{5, 13}) || cs[2] != (Range{21, 25}) {
		t.Fatalf("Chunks = %v", cs)
	}
	// A chunk message stays under NATS's default 1 MiB max_payload.
	b, _ := Encode(&GradChunk{V: Version, Job: "x", Data: make([]byte, 4*DefaultChunkFloats)})
	if len(b) > 1<<20-1024 {
		t.Fatalf("a full chunk encodes to %d bytes", len(b))
	}
}

func TestJobIDs(t *testing.T) {
	for id, ok := range map[string]bool{"mnist-1": true, "a_b": true, "": false, "a.b": false, "a*": false, "a>": false, "a b": false} {
		if ValidJobID(id) != ok {
			t.Errorf("ValidJobID(%q) = %v", id, !ok)
		}
	}
}

// TestMemberSubjects: every control subject a member sends on ends in
// its id, which MemberOf reads back, and is matched by the coordinator's
// subscription with the id "*".
func TestMemberSubjects(t *testing.T) {
	for _, subject := range []func(string) string{RegisterSubject, HeartbeatSubject, ReportSubject, ProgressSubject, DoneSubject} {
		s, all := subject("w-1"), subject("*")
		if MemberOf(s) != "w-1" || !strings.HasSuffix(all, ".*") || s[:len(s)-len("w-1")] != all[:len(all)-1] {
			t.Errorf("%s (all: %s): member %q", s, all, MemberOf(s))
		}
	}
	if got := MemberOf(GradSubject("j", 0, "w-2")); got != "w-2" {
		t.Errorf("MemberOf of a gradient subject: %q", got)
	}
}

// TestWildcardsMatchSubjects: the permission wildcards match the subjects
// they stand for, and no other member's.
func TestWildcardsMatchSubjects(t *testing.T) {
	match := func(pattern, subject string) bool {
		p, s := strings.Split(pattern, "."), strings.Split(subject, ".")
		for i, tok := range p {
			if tok == ">" {
				return len(s) > i
			}
			if i >= len(s) || tok != "*" && tok != s[i] {
				return false
			}
		}
		return len(p) == len(s)
	}
	for _, c := range []struct {
		pattern, subject string
		want             bool
	}{
		{AnyGradSubject, GradSubject("j-1", 3, "w1"), true},
		{WorkerGradSubjects("w1"), GradSubject("j-1", 3, "w1"), true},
		{WorkerGradSubjects("w1"), GradSubject("j-1", 3, "w2"), false},
		{AnyPullSubject, PullSubject("j-1", 2), true},
		{AnyPullSubject, ParamSubject("j-1"), false},
	} {
		if got := match(c.pattern, c.subject); got != c.want {
			t.Errorf("%s matches %s: %v, want %v", c.pattern, c.subject, got, c.want)
		}
	}
}
