/**
 * TensorFlow.js core with every op's gradient registered. tfjs-core's Node build registers none; the
 * gradient registrations ship only in the @tensorflow/tfjs bundle (as a side effect of loading it), and
 * tfjs-core's ES module build cannot be loaded by Node (extensionless imports). So all fedgrow code
 * imports tf from here.
 */
import '@tensorflow/tfjs'

export * from '@tensorflow/tfjs-core'
