package cluster

import (
	"debug/elf"
	"debug/macho"
	"fmt"
	"strings"
)

// Platform is an operating system and architecture in Go's words
// (runtime.GOOS/runtime.GOARCH), such as linux/amd64.
type Platform struct {
	OS, Arch string
}

func (p Platform) String() string { return p.OS + "/" + p.Arch }

// unamePlatform reads the output of `uname -sm`, such as "Linux x86_64".
func unamePlatform(out string) (Platform, error) {
	fields := strings.Fields(out)
	if len(fields) != 2 {
		return Platform{}, fmt.Errorf("unexpected `uname -sm` output %q", strings.TrimSpace(out))
	}
	p := Platform{OS: strings.ToLower(fields[0])}
	arches := map[string]string{
		"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64",
		"i386": "386", "i686": "386", "armv6l": "arm", "armv7l": "arm",
		"riscv64": "riscv64", "ppc64le": "ppc64le", "s390x": "s390x", "loongarch64": "loong64",
	}
	arch, ok := arches[fields[1]]
	if !ok {
		return Platform{}, fmt.Errorf("unknown machine %q in `uname -sm` output", fields[1])
	}
	p.Arch = arch
	return p, nil
}

// filePlatform tells the platform of the executable at path from its ELF
// or Mach-O header.
func filePlatform(path string) (Platform, error) {
	if f, err := elf.Open(path); err == nil {
		defer f.Close()
		arches := map[elf.Machine]string{
			elf.EM_X86_64: "amd64", elf.EM_AARCH64: "arm64", elf.EM_386: "386", elf.EM_ARM: "arm",
			elf.EM_RISCV: "riscv64", elf.EM_PPC64: "ppc64le", elf.EM_S390: "s390x", elf.EM_LOONGARCH: "loong64",
		}
		if a, ok := arches[f.Machine]; ok {
			return Platform{OS: "linux", Arch: a}, nil
		}
		return Platform{}, fmt.Errorf("%s: unknown ELF machine %v", path, f.Machine)
	}
	if f, err := macho.Open(path); err == nil {
		defer f.Close()
		switch f.Cpu {
		case macho.CpuAmd64:
			return Platform{OS: "darwin", Arch: "amd64"}, nil
		case macho.CpuArm64:
			return Platform{OS: "darwin", Arch: "arm64"}, nil
		}
		return Platform{}, fmt.Errorf("%s: unknown Mach-O CPU %v", path, f.Cpu)
	}
	return Platform{}, fmt.Errorf("%s: not an ELF or Mach-O executable", path)
}
