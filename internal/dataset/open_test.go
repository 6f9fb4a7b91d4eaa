package dataset

import (
	"testing"
)

func TestOpen(t *testing.T) {
	mnistDir := t.TempDir()
	mnistFixture(t, mnistDir, Train, 6, true, true)
	mnistFixture(t, mnistDir, Test, 4, true, true)
	cifarDir := t.TempDir()
	cifarFixture(t, cifarDir, Test, 2)
	t.Setenv(MNISTDirEnv, mnistDir)

	tests := []struct {
		kind, dir string
		wantName  string
		wantN     int
	}{
		{"mnist", mnistDir, "mnist-test", 4},
		{"MNIST", "", "mnist-test", 4}, // dir from DefaultMNISTDir via $MAAS_MNIST_DIR
		{"cifar10", cifarDir, "cifar10-test", 2},
	}
	for _, tt := range tests {
		d, err := Open(tt.kind, tt.dir, Test)
		if err != nil {
			t.Fatalf("Open(%q, %q): %v", tt.kind, tt.dir, err)
		}
		if d.Name != tt.wantName || d.N != tt.wantN {
			t.Errorf("Open(%q, %q) = %q with N=%d, want %q with N=%d", tt.kind, tt.dir, d.Name, d.N, tt.wantName, tt.wantN)
		}
	}
}

func TestOpenErrors(t *testing.T) {
	t.Setenv(MNISTDirEnv, t.TempDir()) // holds no files
	tests := []struct {
		kind, dir string
		err       error
		msg       []string
	}{
		{"imagenet", "", ErrUnknownKind, []string{`"imagenet"`, "mnist", "cifar10"}},
		{"cifar10", "", ErrArgument, []string{"cifar10"}},
		{"mnist", "", ErrNotFound, []string{MNISTDirEnv}},
	}
	for _, tt := range tests {
		t.Run(tt.kind, func(t *testing.T) {
			_, err := Open(tt.kind, tt.dir, Train)
			wantErr(t, err, tt.err, tt.msg...)
		})
	}
}

func TestSplit(t *testing.T) {
	for _, s := range []Split{Train, Test} {
		got, err := ParseSplit(s.String())
		if err != nil || got != s {
			t.Errorf("ParseSplit(%q) = %v, %v", s.String(), got, err)
		}
	}
	if _, err := ParseSplit("validation"); err == nil {
		t.Error("ParseSplit(\"validation\") succeeded")
	}
	if got := Split(5).String(); got != "Split(5)" {
		t.Errorf("Split(5).String() = %q", got)
	}
}
