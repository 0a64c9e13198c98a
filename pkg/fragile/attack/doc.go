// Package attack modifies ONNX classifiers the way an adversary or an accident
// would: weight noise, magnitude pruning, float16 and int8 round trips, a single
// weight changed, fine-tuning (of every weight or of the last layer only), poisoning
// and backdoors. Each attack returns a new ONNX file with the same graph and new
// initializer values, so detection can be measured against known changes. Every
// random draw comes from the *rand.Rand the caller passes.
package attack
