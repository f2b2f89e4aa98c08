"""`aietl demo`: the whole loop, driven through the public REST API the way a user would drive it.

Six numbered steps (log in, schema drift, feature store, templates, predictive maintenance, vector
sink) print what the platform answered. Every figure printed comes from a response, except the
simulation's hidden truth in step 5, which is labelled as such. Each step also checks the answer it
got (a rename found, no leakage, a degrading pipeline ranked risky, the right document on top), so a
passing demo is evidence, not a slideshow. Without `--url` the demo starts `aietl up` itself in a
temporary folder on embedded defaults and stops it afterwards, failure or not.
"""
