package nn

// NewInputGradientShards is newInputGradient for the external tests: an input
// gradient over a chosen number of shards.
var NewInputGradientShards = newInputGradient
