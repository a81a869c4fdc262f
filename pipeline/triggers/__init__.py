"""S3-triggered jobs: objects landing in a bucket become jobs, by rules.

storage event (SQS message, webhook post, listing poll)
   │  pipeline.triggers.events   one `ObjectEvent` per created object
   ▼
pipeline.triggers.rules      which rules want it, its mask and output
   ▼
pipeline.triggers.intake     re-checked (HEAD), deduplicated, recorded as a job in
                             its rule's rolling batch, or waiting for its mask
"""
