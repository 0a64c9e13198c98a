// Package attack modifies ONNX classifiers the way an adversary or an accident
// would: weight noise, pruning, precision loss, fine-tuning, poisoning and
// backdoors. Each attack returns a new ONNX file with the same graph and new
// initializer values, so detection can be measured against known changes.
package attack
