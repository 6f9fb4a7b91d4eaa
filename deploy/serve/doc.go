// Package serve answers the KServe Open Inference Protocol V2 (OIP V2) REST
// API for the models maas trains.
//
// A [Server] holds, per model name, the newest version and the one before
// it. Each version is an inference-only nn.Model owned by one batcher
// goroutine: requests wait in a bounded queue (full: 429), the batcher takes
// the first, gathers more while others are on their way, up to the spec's
// serving.max_batch_size samples and never longer than
// serving.max_queue_delay, runs one forward pass for the whole batch and
// hands each request its rows of the logits, the softmax probabilities and
// the argmax class. The model is touched by its batcher only.
//
// Endpoints (OIP V2; every error answers {"error": "..."}):
//
//	GET  /v2/health/live                      200 {"live": true}
//	GET  /v2/health/ready                     200 {"ready": true}, 503 until a model is loaded
//	GET  /v2                                  server metadata
//	GET  /v2/models/{m}[/versions/{v}]        model metadata
//	GET  /v2/models/{m}[/versions/{v}]/ready  200 {"name", "ready": true}, 404 if not served
//	POST /v2/models/{m}[/versions/{v}]/infer  inference
//	GET  /metrics                             Prometheus metrics
//
// An inference request has one input named "input", datatype FP32, shape
// [N, C, H, W] (the model's input shape after N) or [N, C·H·W], with N up
// to the model's max batch size, its data flattened row-major or nested as
// the shape says. Pixels are taken as given (already normalised) unless the
// input has the parameter "raw_pixels": true, in which case values in
// [0, 255] are normalised as training did. The answer holds the outputs
// asked for (default all): "logits" and "probabilities" (FP32, [N,
// classes]) and "class" (INT64, [N]).
//
// Versions are swapped without a pause: [Server.Load] builds and warms the
// new version first, then publishes it with one atomic pointer store.
// A request holds a reference to the version it resolved to and finishes on
// it; a version dropped from the table is released when its last request
// ends. A version that fails to load changes nothing that is served.
// [Server.WatchPublished] loads each version the cluster publishes on NATS
// and [Server.LoadIndex] the newest of each model in the coordinator's
// index.
//
// The server is open and plain by default. Config.TLS makes it speak HTTPS
// (mutual TLS with ClientCAs), and Config.CheckToken (the cluster's
// tokens.json, read role) or Config.Tokens (a plain list) wants a bearer
// token on everything but /v2/health/*: 401 otherwise, counted in
// maas_serve_auth_refusals_total.
package serve
