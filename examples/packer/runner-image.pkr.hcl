# runner-scaler's runner image, built with Packer: the same install phase as
# the Image Builder stack (examples/cloudformation/runner-image.yaml), that is
# userdata/install-runner-ubuntu.sh with RUNNER_SCALER_PHASE=install, on
# Canonical's current Ubuntu. No token and nothing of any instance goes in.
#
#   packer init examples/packer                       # the amazon plugin (plugins.pkr.hcl)
#   packer build -var region=eu-west-1 examples/packer
#
# Then point the main stack's ImageId at the AMI (docs/deploying.md, "Fast
# starts"). Add your own tools as provisioners after the install phase.
# CI runs `packer validate` on this file (Debian's Packer, whose amazon
# builder is built in).

variable "region" {
  type        = string
  description = "The region to build in, and where the AMI is registered."
}

variable "instance_type" {
  type        = string
  default     = "t3.medium"
  description = "The build instance's type; its architecture must match ubuntu_arch."
}

variable "ubuntu_arch" {
  type        = string
  default     = "amd64"
  description = "amd64 or arm64."
}

variable "ubuntu_release" {
  type        = string
  default     = "jammy-22.04"
  description = "jammy-22.04 or noble-24.04."
}

variable "volume_size" {
  type        = number
  default     = 8
  description = "The image's root volume, GiB: at most the main stack's VolumeSize."
}

variable "subnet_id" {
  type        = string
  default     = ""
  description = "A subnet with outbound internet access; empty = the default VPC."
}

locals {
  # The same script the stacks embed, read from the repository.
  install_script = "${path.root}/../../userdata/install-runner-ubuntu.sh"
  # 22.04's images are named hvm-ssd, 24.04's hvm-ssd-gp3.
  volume_kind = var.ubuntu_release == "jammy-22.04" ? "hvm-ssd" : "hvm-ssd-gp3"
  built_at    = formatdate("YYYYMMDD-hhmmss", timestamp())
}

source "amazon-ebs" "runner" {
  region          = var.region
  instance_type   = var.instance_type
  subnet_id       = var.subnet_id
  ssh_username    = "ubuntu"
  ami_name        = "runner-scaler-runner-${var.ubuntu_arch}-${local.built_at}"
  ami_description = "Ubuntu with CircleCI machine runner 3 installed by runner-scaler's install phase"

  source_ami_filter {
    owners      = ["099720109477"] # Canonical
    most_recent = true
    filters = {
      name                = "ubuntu/images/${local.volume_kind}/ubuntu-${var.ubuntu_release}-${var.ubuntu_arch}-server-*"
      root-device-type    = "ebs"
      virtualization-type = "hvm"
    }
  }

  launch_block_device_mappings {
    device_name           = "/dev/sda1"
    volume_size           = var.volume_size
    volume_type           = "gp3"
    iops                  = 3000 # gp3's baseline, which Packer 1.6 wants spelled out
    throughput            = 125
    delete_on_termination = true
  }

  tags = {
    Name                  = "runner-scaler-runner"
    "runner-scaler:image" = "install phase of userdata/install-runner-ubuntu.sh"
  }
}

build {
  sources = ["source.amazon-ebs.runner"]

  # First boot's own cloud-init (and its apt runs) must be done before ours.
  provisioner "shell" {
    inline = ["cloud-init status --wait >/dev/null || true"]
  }

  # The install phase, as root; it writes /etc/runner-scaler/image last.
  provisioner "shell" {
    script           = local.install_script
    environment_vars = ["RUNNER_SCALER_PHASE=install"]
    execute_command  = "sudo env {{ .Vars }} bash '{{ .Path }}'"
  }

  # Your own tools: provisioners here, after the install phase. A change to
  # the install phase itself belongs in the script's BUILD ENVIRONMENT section.

  post-processor "manifest" {
    output = "packer-manifest.json"
  }
}
