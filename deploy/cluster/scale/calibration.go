package scale

import _ "embed"

// Calibration is the runs `maas plan` fits its cost model to by default:
// `make scale` on emulated hosts (see docs/scaling.md).
//
//go:embed calibration.jsonl
var Calibration string

// CalibrationSource says where Calibration was measured.
const CalibrationSource = "make scale, the per-host data plane runs (maas bench scale --nats leaf --aggregation host), those with overlap (--overlap, --bucket-kb) and with several server hosts (--server-hosts), 2026-12-07, AMD EPYC (family 25, model 17), 2 cores"
