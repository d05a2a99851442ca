//go:build edgefort_fault_unready

package agent

import (
	"context"

	"github.com/edgefort/edgefort/internal/supervisor"
)

// A binary built with -tags edgefort_fault_unready has a component that
// never becomes ready. The self-update tests install such a binary to
// prove that an agent that is not healthy in time is rolled back. Release
// builds never carry this file.
func init() {
	faultComponents = append(faultComponents, supervisor.Spec{
		Name: "fault-unready", SignalsReady: true,
		Runner: neverReady{},
	})
}

type neverReady struct{}

func (neverReady) Run(ctx context.Context) error {
	<-ctx.Done()
	return nil
}
