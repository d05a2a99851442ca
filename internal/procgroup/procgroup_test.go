package procgroup

import (
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestTailBuffer(t *testing.T) {
	for _, tc := range []struct {
		writes []string
		want   string
	}{
		{[]string{"ab", "cd"}, "abcd"},
		{[]string{"abcd", "ef"}, "...cdef"},
		{[]string{"abcdefgh"}, "...efgh"},
		{[]string{"abcd"}, "abcd"},
		{[]string{"x", "abcd"}, "...abcd"},
	} {
		b := &TailBuffer{Max: 4}
		for _, w := range tc.writes {
			if n, err := b.Write([]byte(w)); n != len(w) || err != nil {
				t.Fatalf("Write(%q) = %d, %v", w, n, err)
			}
		}
		if got := b.String(); got != tc.want {
			t.Errorf("after %q: %q, want %q", tc.writes, got, tc.want)
		}
	}
}

// TestKillGroup: Kill reaches the children of the leader too.
func TestKillGroup(t *testing.T) {
	cmd := exec.Command("/bin/sh", "-c", "sleep 1000 & echo $!; wait")
	cmd.SysProcAttr = Attr()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 32)
	n, _ := out.Read(buf)
	child := strings.TrimSpace(string(buf[:n]))
	Kill(cmd.Process.Pid, 9)
	cmd.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if exec.Command("kill", "-0", child).Run() != nil {
			return // gone
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Errorf("child %s survived the group kill", child)
}
