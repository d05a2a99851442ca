package selfupdate

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/edgefort/edgefort/updater/module"
)

// verifyReboot runs in the restarted agent: the binary must be the new
// file, the running executable must be that binary, and the agent must
// become ready within HealthTimeout.
func (c *config) verifyReboot(ctx context.Context, p module.Payload) error {
	if reason := trialFailed(p.Tree); reason != "" {
		return fmt.Errorf("trial start: %s; the previous binary was put back", reason)
	}
	st, err := loadStateFor(p.Tree, c.Binary)
	if err != nil {
		return err
	}
	want, err := parseHash(st.New)
	if err != nil {
		return err
	}
	got, err := hashFile(c.Binary)
	if err != nil {
		return fmt.Errorf("binary check: %w", err)
	}
	if got != want {
		return fmt.Errorf("binary check: %s has sha256 %x, want the new %s", c.Binary, got[:6], short(st.New))
	}
	if err := c.checkRunning(c.Binary, want); err != nil {
		return fmt.Errorf("running executable check: %w", err)
	}
	if c.Ready == nil {
		return errors.New("readiness check: no readiness check configured")
	}
	start := time.Now()
	if err := c.waitReady(ctx); err != nil {
		return fmt.Errorf("readiness check: %w", err)
	}
	c.log.Info("new agent binary is running and ready", logKeyBinary, c.Binary, logKeyNewHash, short(st.New),
		"ready_after", time.Since(start).Round(time.Millisecond))
	return nil
}

// waitReady calls Ready until it returns nil or HealthTimeout passes.
func (c *config) waitReady(ctx context.Context) error {
	rctx, cancel := context.WithTimeout(ctx, c.HealthTimeout)
	defer cancel()
	for {
		err := c.Ready(rctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if rctx.Err() != nil {
			return fmt.Errorf("the agent did not become ready within %v: %w", c.HealthTimeout, err)
		}
		t := time.NewTimer(c.readyPoll)
		select {
		case <-t.C:
		case <-rctx.Done():
			t.Stop()
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("the agent did not become ready within %v: %w", c.HealthTimeout, err)
		}
	}
}

// rollbackReboot restarts the agent so the old binary runs, unless the
// running executable already is the binary on disk with the old content
// (the update failed before the agent restarted, or before anything was
// replaced).
func (c *config) rollbackReboot(p module.Payload) error {
	if c.oldRunning(p) {
		c.log.Info("old agent binary is already running; no restart needed", logKeyBinary, c.Binary)
		return nil
	}
	c.log.Info("restarting the agent to run the old binary", logKeyBinary, c.Binary)
	return module.ErrRestartAgent
}

// oldRunning reports whether the binary holds the old content (as
// recorded, or unchanged when nothing was recorded) and is what runs.
func (c *config) oldRunning(p module.Payload) bool {
	st, err := loadState(p.Tree)
	if err != nil || (st.Binary != "" && st.Binary != c.Binary) {
		return false
	}
	got, err := hashFile(c.Binary)
	if err != nil {
		return false
	}
	if st.Old != "" {
		old, err := parseHash(st.Old)
		if err != nil || old != got {
			return false
		}
	}
	return c.checkRunning(c.Binary, got) == nil
}

// rollbackVerifyReboot checks that the binary, and the running executable,
// are the old one again.
func (c *config) rollbackVerifyReboot(p module.Payload) error {
	st, err := loadState(p.Tree)
	if err != nil {
		return err
	}
	if st.Old == "" {
		c.log.Info("nothing to verify: the binary was not replaced", logKeyBinary, c.Binary)
		return nil
	}
	if st.Binary != c.Binary {
		return fmt.Errorf("the update was installed to %s, but the binary is now %s", st.Binary, c.Binary)
	}
	want, err := parseHash(st.Old)
	if err != nil {
		return err
	}
	got, err := hashFile(c.Binary)
	if err != nil {
		return fmt.Errorf("binary check: %w", err)
	}
	if got != want {
		return fmt.Errorf("binary check: %s has sha256 %x, want the old %s", c.Binary, got[:6], short(st.Old))
	}
	if err := c.checkRunning(c.Binary, want); err != nil {
		return fmt.Errorf("running executable check: %w", err)
	}
	c.log.Info("old agent binary is back and running", logKeyBinary, c.Binary, logKeyOldHash, short(st.Old))
	return nil
}
