# The amazon plugin, for Packer 1.7 and later (`packer init examples/packer`).
# Kept apart from runner-image.pkr.hcl: Debian's Packer (1.6.6), which CI
# validates that file with, has the amazon builder built in and does not
# know this block.
packer {
  required_version = ">= 1.7.0"
  required_plugins {
    amazon = {
      source  = "github.com/hashicorp/amazon"
      version = ">= 1.2.0"
    }
  }
}
