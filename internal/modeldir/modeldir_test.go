package modeldir

import (
	"os"
	"path/filepath"
	"testing"
)

// TestWriteFileAtomic: a written file has mode 0644, and a write that
// fails leaves nothing behind.
func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	if err := writeFileAtomic(filepath.Join(dir, "a.yaml"), []byte("old")); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, "a.yaml"))
	if err != nil || st.Mode().Perm() != 0o644 {
		t.Fatalf("written file mode %v, err %v; want 0644", st.Mode(), err)
	}
	// Writing into a directory that does not exist fails and leaves nothing.
	if err := writeFileAtomic(filepath.Join(dir, "missing", "b.yaml"), []byte("new")); err == nil {
		t.Fatal("write into a missing directory succeeded")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("directory holds %d entries after a failed write, want 1", len(entries))
	}
}
