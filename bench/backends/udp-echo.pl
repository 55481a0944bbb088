#!/usr/bin/perl
# The shared UDP backend: sends every datagram back to its sender, unchanged. Perl (perl-base is
# part of every Debian system) rather than Node, so that no contender shares a runtime with it.
# Usage: perl udp-echo.pl HOST PORT    (runs until killed)
use strict;
use warnings;
use Socket;

my ($host, $port) = @ARGV;
die "usage: $0 HOST PORT\n" unless defined $port;
socket(my $sock, PF_INET, SOCK_DGRAM, getprotobyname('udp')) or die "socket: $!\n";
setsockopt($sock, SOL_SOCKET, SO_RCVBUF, 4 * 1024 * 1024);
bind($sock, sockaddr_in($port, inet_aton($host))) or die "bind $host:$port: $!\n";
$| = 1;
print "udp echo listening on $host:$port\n";
my $buf;
while (1) {
  my $from = recv($sock, $buf, 65535, 0);
  next unless defined $from;
  send($sock, $buf, 0, $from);
}
