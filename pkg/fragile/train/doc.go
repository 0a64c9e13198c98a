// Package train trains ONNX classifiers with gradients from package nn: the
// Fashion-MNIST models the evaluation protects (an MLP, LeNet-5 and an MLP with
// BatchNormalization) and the fine-tuning that attack tools apply to any model.
//
// Training changes only initializer values: Fit returns the same graph with new
// weights (onnx.ReplaceInitializers), so an attacked or trained model is
// byte-for-byte the original file except for its weights.
package train
