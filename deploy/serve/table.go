package serve

import (
	"fmt"
	"maps"
	"slices"
)

// keepVersions is how many versions of a model stay loaded: the newest,
// which serves by default, and the one before it, for requests pinned to
// it while clients move over.
const keepVersions = 2

// table is an immutable snapshot of what is served. Writers build a new
// table and publish it with one atomic store; readers never lock.
type table struct {
	models map[string][]*version // name → versions, newest first
	closed bool                  // the server is shut down
}

var emptyTable = &table{models: map[string][]*version{}}

// lookup finds version num of the model name; num 0 is the newest.
func (t *table) lookup(name string, num int) (*version, error) {
	if t.closed {
		return nil, ErrClosed
	}
	vs, ok := t.models[name]
	if !ok {
		return nil, fmt.Errorf("%w: %q is not served", ErrModelNotFound, name)
	}
	if num == 0 {
		return vs[0], nil
	}
	for _, v := range vs {
		if v.num == num {
			return v, nil
		}
	}
	return nil, fmt.Errorf("%w: %s version %d is not served (served: %s)", ErrVersionNotFound, name, num, versionList(vs))
}

// check says whether version num of name could be added: not served
// already, and not older than every version kept.
func (t *table) check(name string, num int) error {
	vs := t.models[name]
	for _, v := range vs {
		if v.num == num {
			return fmt.Errorf("%w: %s version %d", ErrVersionLoaded, name, num)
		}
	}
	if len(vs) >= keepVersions && num < vs[len(vs)-1].num {
		return fmt.Errorf("%w: %s version %d (served: %s)", ErrVersionOld, name, num, versionList(vs))
	}
	return nil
}

// with returns a table holding v as well, and the versions it drops.
func (t *table) with(v *version) (*table, []*version, error) {
	if err := t.check(v.name, v.num); err != nil {
		return nil, nil, err
	}
	vs := append(slices.Clone(t.models[v.name]), v)
	slices.SortFunc(vs, func(a, b *version) int { return b.num - a.num })
	var dropped []*version
	if len(vs) > keepVersions {
		dropped = vs[keepVersions:]
		vs = vs[:keepVersions:keepVersions]
	}
	nt := &table{models: maps.Clone(t.models)}
	nt.models[v.name] = vs
	return nt, dropped, nil
}

// makeRoom returns a table without the versions of name that adding
// version num would push out, and those versions: dropping them before the
// new version is built keeps memory during a swap at the old versions kept
// plus the new one.
func (t *table) makeRoom(name string, num int) (*table, []*version) {
	vs := t.models[name]
	if len(vs) < keepVersions {
		return t, nil
	}
	nums := []int{num}
	for _, v := range vs {
		nums = append(nums, v.num)
	}
	slices.Sort(nums)
	cut := nums[len(nums)-keepVersions] // the oldest version that stays
	var keep, dropped []*version
	for _, v := range vs {
		if v.num >= cut {
			keep = append(keep, v)
		} else {
			dropped = append(dropped, v)
		}
	}
	if len(dropped) == 0 {
		return t, nil
	}
	nt := &table{models: maps.Clone(t.models), closed: t.closed}
	nt.models[name] = keep
	return nt, dropped
}

// without returns a table without the model name, and its versions.
func (t *table) without(name string) (*table, []*version, error) {
	vs, ok := t.models[name]
	if !ok {
		return nil, nil, fmt.Errorf("%w: %q is not served", ErrModelNotFound, name)
	}
	nt := &table{models: maps.Clone(t.models)}
	delete(nt.models, name)
	return nt, vs, nil
}

// versionList prints versions as "3, 2".
func versionList(vs []*version) string {
	s := ""
	for i, v := range vs {
		if i > 0 {
			s += ", "
		}
		s += v.label
	}
	return s
}
