// Package datastore keeps datasets in the cluster's JetStream Object Store,
// so that workers on any host can train on them without a copy of the
// files on every host.
//
// [Push] reads a dataset (mnist or cifar10, both splits) with
// dataset.Open and writes it to the bucket [wire.DataBucket] as shards of a fixed
// number of samples:
//
//	<name>/train/00000, <name>/train/00001, …   shards of the training split
//	<name>/test/00000, …                        shards of the test split
//	<name>/manifest.json                        written last
//
// A shard is a small versioned header (see [EncodeShard]) followed by its
// samples' pixels and labels. The [Manifest] records the kind, the sample
// shape, the class count and, per split, the sample count and every
// shard's sample range, size and SHA-256. A dataset without a manifest is
// incomplete (a push in progress or interrupted) and invisible: [List],
// [Open] and the coordinator see only datasets whose manifest exists.
// Pushing a name again replaces that dataset: its manifest is removed
// first, the new shards and manifest written, and the old shards the new
// manifest does not name deleted.
//
// [Open] reads a manifest; [Remote.Split] turns one of its splits into a
// *dataset.Dataset whose shards load lazily, the first time Batch needs
// one of their samples, from a local cache directory or else from the
// bucket, always checked against the manifest's SHA-256. The cache key
// includes the manifest's digest, so a re-pushed dataset is never served
// from the cache of the old one.
package datastore
