"""Optimizer steps shared by our trainable components."""
from thinc.api import Model, Optimizer


def finish_update_with_head_scale(model: Model, sgd: Optimizer, *, head_lr_scale: float) -> None:
    """Step the optimizer over a component's model, scaling the learning rate
    of every parameter outside its backbone by head_lr_scale. A fresh head
    above a pretrained backbone needs larger steps than the backbone's
    fine-tuning rate; the backbone's own layers and shims keep the optimizer's.
    The backbone is the model's "tok2vec" ref, or, when that layer wraps
    another "tok2vec" (FeatureTok2Vec: fresh feature layers beside the
    backbone), the innermost one: the fresh layers step like the head.

    model (Model): The component's model, with a "tok2vec" ref.
    sgd (Optimizer): The optimizer.
    head_lr_scale (float): Learning-rate multiplier for the head.
    """
    backbone = model.get_ref("tok2vec")
    while backbone.has_ref("tok2vec"):
        backbone = backbone.get_ref("tok2vec")
    tok2vec_ids = {node.id for node in backbone.walk()}
    for node in model.walk():
        for shim in node.shims:
            shim.finish_update(sgd)
    for node in model.walk():
        scale = 1.0 if node.id in tok2vec_ids else head_lr_scale
        for name in node.param_names:
            if node.has_grad(name):
                param, _ = sgd((node.id, name), node.get_param(name), node.get_grad(name), lr_scale=scale)
                node.set_param(name, param)
