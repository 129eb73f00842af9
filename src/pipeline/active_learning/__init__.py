"""Active learning (SPEC section 4; seed 002): label fewer images, and show annotators less gore.

- `strategies`: which unlabelled images to ask for next, from the classifier's probabilities
  (scores from scikit-activeml); light, no TensorFlow.
- `loop`: the pool-based loop (class-balanced initial pool, query, retrain, stop), for any learner.
- `keras_learner`: our classifier members as the loop's learner (the paper's ResNet50V2 or any member).
- `simulate`: k-fold simulation of every strategy against full supervision; `plots`, `report`.
- `queue`: rank a folder of unlabelled images with a stored classifier (`gore-censor al next`).
- `labels`: take annotators' labels (VIA JSON or CSV) into a data set folder (`gore-censor al labels`).
"""
