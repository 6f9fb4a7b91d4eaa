package cluster

import (
	"fmt"
	"strconv"
	"strings"
)

// The shell scripts the launcher runs on a host, one SSH command each.
// They are POSIX sh and use coreutils, util-linux's setsid and /proc.

// aliveFunc defines alive DIR ID: true when DIR/pid names a live process
// whose environment holds ProcessEnv=ID (a pid file outliving its process
// and a reused pid both read as not running; so does a zombie, whose
// environment is empty). It leaves the pid in $p.
const aliveFunc = `alive() { p=$(cat "$1/pid" 2>/dev/null) && [ -n "$p" ] && tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qxF "` + ProcessEnv + `=$2"; }
`

// statusScript prints one line per process: "ID PID running" or
// "ID - stopped".
func statusScript(l Layout, ids []string) string {
	var b strings.Builder
	b.WriteString(aliveFunc)
	for _, id := range ids {
		fmt.Fprintf(&b, "if alive %s %s; then echo %s \"$p\" running; else echo %s - stopped; fi\n",
			shq(l.Dir(id)), shq(id), shq(id), shq(id))
	}
	return b.String()
}

// startScript starts the processes ids that are not running, detached
// (setsid nohup, output appended to their log) or, with systemd, as
// enabled units. It prints "ID started" or "ID running" per process.
func startScript(l Layout, ids []string, systemd bool) string {
	var b strings.Builder
	b.WriteString(aliveFunc)
	if systemd {
		b.WriteString("systemctl daemon-reload || exit 1\n")
	}
	for _, id := range ids {
		dir := shq(l.Dir(id))
		fmt.Fprintf(&b, "if alive %s %s; then echo %s running; else\n", dir, shq(id), shq(id))
		if systemd {
			fmt.Fprintf(&b, "  systemctl enable --now %s >/dev/null || exit 1\n", shq(UnitName(id)))
		} else {
			fmt.Fprintf(&b, "  cd %s || exit 1\n  rm -f pid\n  setsid nohup ./run >>log 2>&1 </dev/null & echo $! >pid\n", dir)
		}
		fmt.Fprintf(&b, "  echo %s started\nfi\n", shq(id))
	}
	return b.String()
}

// stopScript stops the processes ids: systemctl disable --now for those
// with a unit, SIGTERM for the others; after grace seconds, SIGKILL for
// any left. It prints "ID killed" for those it had to kill.
func stopScript(l Layout, ids []string, grace int) string {
	var b strings.Builder
	b.WriteString(aliveFunc)
	quoted := make([]string, len(ids))
	for i, id := range ids {
		quoted[i] = shq(id)
	}
	list := strings.Join(quoted, " ")
	fmt.Fprintf(&b, "D=%s\n", shq(l.DataDir))
	fmt.Fprintf(&b, "for id in %s; do\n", list)
	b.WriteString(`  u="/etc/systemd/system/maas-$id.service"
  if [ -f "$u" ]; then systemctl disable --now "maas-$id.service" >/dev/null 2>&1; fi
  if alive "$D/$id" "$id"; then kill -TERM "$p"; fi
done
`)
	fmt.Fprintf(&b, "i=0\nwhile [ $i -lt %s ]; do\n  left=\n", strconv.Itoa(grace*10))
	fmt.Fprintf(&b, "  for id in %s; do if alive \"$D/$id\" \"$id\"; then left=1; fi; done\n", list)
	b.WriteString("  [ -z \"$left\" ] && break\n  sleep 0.1; i=$((i+1))\ndone\n")
	fmt.Fprintf(&b, "for id in %s; do if alive \"$D/$id\" \"$id\"; then kill -KILL \"$p\"; echo \"$id killed\"; fi; done\n", list)
	b.WriteString("sleep 0.2\n")
	return b.String()
}

// purgeScript removes what the launcher made on a host: the processes'
// directories (their state too), their units, the binary and the secrets,
// then the data directory when nothing else is left in it.
func purgeScript(l Layout, ids []string) string {
	var b strings.Builder
	for _, id := range ids {
		fmt.Fprintf(&b, "rm -rf %s\n", shq(l.Dir(id)))
		fmt.Fprintf(&b, "if [ -f %s ]; then rm -f %s; reload=1; fi\n", shq(UnitPath(id)), shq(UnitPath(id)))
	}
	b.WriteString("[ -n \"$reload\" ] && systemctl daemon-reload\n")
	fmt.Fprintf(&b, "rm -rf %s %s\n", shq(l.Secrets()), shq(l.DataDir+"/bin"))
	fmt.Fprintf(&b, "rmdir %s 2>/dev/null\ntrue\n", shq(l.DataDir))
	return b.String()
}

// systemdScript prints "systemd" when the host runs systemd (running or
// degraded) and the login user may install units (root), else "nohup".
const systemdScript = `s=$(systemctl is-system-running 2>/dev/null); if { [ "$s" = running ] || [ "$s" = degraded ]; } && [ "$(id -u)" = 0 ]; then echo systemd; else echo nohup; fi`

// parseStatus reads statusScript's output into pid (0: not running) by id.
func parseStatus(out string) map[string]int {
	pids := map[string]int{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			continue
		}
		pid, _ := strconv.Atoi(f[1])
		if f[2] != "running" {
			pid = 0
		}
		pids[f[0]] = pid
	}
	return pids
}
