"""Role adapters: training data from a tool catalogue, LoRA training on CPU, manifests.

`examples` builds the role examples, `trainer` trains one adapter (resumable, seeded),
`manifest` records what an adapter was made from, `library` finds the shipped ones.
"""
