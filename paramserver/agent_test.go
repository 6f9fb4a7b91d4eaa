package paramserver_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/maas-ml/maas/internal/jobspec"
	"github.com/maas-ml/maas/internal/member"
	"github.com/maas-ml/maas/internal/testcluster"
	"github.com/maas-ml/maas/internal/wire"
	"github.com/maas-ml/maas/nn"
	"github.com/maas-ml/maas/paramserver"
	"github.com/maas-ml/maas/tensor"
)

// TestAgentHoldsNothing: a parameter server that holds nothing of a job
// does not take an epoch that goes on from a later step (it would start
// the range afresh there); it tells the coordinator so (not_held, not a
// refusal), and so does any process for an assignment addressed to
// another incarnation of it (one that served the job before a restart).
// The job's first epoch, from step 0, it takes.
func TestAgentHoldsNothing(t *testing.T) {
	text, err := os.ReadFile("../examples/mnist-cnn.yaml")
	if err != nil {
		t.Fatal(err)
	}
	spec, err := jobspec.Parse(text)
	if err != nil {
		t.Fatal(err)
	}
	m, err := nn.Build(spec.Model, tensor.Reference)
	if err != nil {
		t.Fatal(err)
	}
	s := testcluster.StartNATS(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	agent := paramserver.NewAgent(testcluster.Connect(t, s), member.Config{ID: "ps-1"}, paramserver.DefaultConfig())
	done := make(chan error, 1)
	go func() { done <- agent.Run(ctx, testcluster.Connect(t, s)) }()
	defer func() { cancel(); <-done }()
	nc := testcluster.Connect(t, s)
	assign := func(from int64, boot string) wire.Ack {
		t.Helper()
		b, err := wire.Encode(&wire.Assignment{V: wire.Version, Job: "j", Spec: string(text), Epoch: 3, Members: 1, MemberIDs: []string{"w"}, Boot: boot,
			Ranges: []wire.Range{{Lo: 0, Hi: len(m.Params)}}, FromStep: from, TotalSteps: 100, StepsPerEpoch: 50})
		if err != nil {
			t.Fatal(err)
		}
		for try := 0; ; try++ {
			reply, err := nc.Request(wire.MemberSubject("ps-1"), b, 2*time.Second)
			if err != nil {
				if try < 20 {
					time.Sleep(100 * time.Millisecond) // the agent subscribing
					continue
				}
				t.Fatal(err)
			}
			var ack wire.Ack
			if err := wire.Decode(reply.Data, &ack); err != nil {
				t.Fatal(err)
			}
			return ack
		}
	}
	if ack := assign(380, ""); ack.Code != wire.AckNotHeld {
		t.Errorf("an epoch from step 380 to a server holding nothing: %s %q, want %s", ack.Code, ack.Reason, wire.AckNotHeld)
	}
	if ack := assign(0, "an-earlier-incarnation"); ack.Code != wire.AckNotHeld {
		t.Errorf("an epoch for another incarnation: %s %q, want %s", ack.Code, ack.Reason, wire.AckNotHeld)
	}
	if st, ok := agent.Server().Stats("j"); ok {
		t.Errorf("the server took the job anyway: %+v", st)
	}
	if ack := assign(0, ""); ack.Code != wire.AckOK {
		t.Errorf("the job's first epoch: %s %q", ack.Code, ack.Reason)
	}
}
